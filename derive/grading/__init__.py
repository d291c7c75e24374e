"""Grading hand-written gradient code against derive's own derivation, in a sandbox."""
