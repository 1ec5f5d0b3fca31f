"""Coursework checks for Chapter 5 (the chapter's author fills this module)."""
