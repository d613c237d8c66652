"""Signals of the hierarchy, for the apps that keep copies of it (governance imports none of them)."""

from django.dispatch import Signal

# `unit` (a community or a grid) and its subtree have just moved under another parent, in the mover's
# transaction: the cases keep their grid's community and street (`grids.services.cases_follow_unit`).
unit_moved = Signal()
# Sent as `unit_move` begins, before it locks a unit: what keeps copies of units' places holds their writers off
# until the move is done (`grids.services.cases_hold_for_move`), in an order that cannot deadlock.
unit_moving = Signal()
