"""Coursework checks for Chapter 2 (the chapter's author fills this module)."""
