"""Pure rules of the kiosk: no UI, no database, no wall clock, no I/O.

Everything here can be replayed from records and tested with a FakeClock.
"""
