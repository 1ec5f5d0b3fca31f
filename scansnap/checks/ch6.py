"""Coursework checks for Chapter 6 (the chapter's author fills this module)."""
