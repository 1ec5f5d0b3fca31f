"""Coursework checks for Chapter 4 (the chapter's author fills this module)."""
