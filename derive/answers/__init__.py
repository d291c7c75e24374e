"""Checking students' formulas: read LaTeX or plain math, judge it, say what is wrong."""
