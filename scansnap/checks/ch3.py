"""Coursework checks for Chapter 3 (the chapter's author fills this module)."""
