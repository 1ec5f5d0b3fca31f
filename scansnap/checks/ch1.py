"""Coursework checks for Chapter 1 (the chapter's author fills this module)."""
