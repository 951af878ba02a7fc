"""Users of the consoles (call-takers, dispatchers, supervisors, analysts, admins, national)."""
