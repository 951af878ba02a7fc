"""Calls: every call that reaches the centre, from its first ring to its outcome."""
