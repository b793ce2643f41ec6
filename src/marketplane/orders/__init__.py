"""Orders: a customer order split into one supplier order per supplier, stock reservations,
payment through a provider port, the suppliers' decisions, refunds, and the jobs that expire
unpaid orders and enforce acceptance deadlines.

Invariants: for every offer, available + reserved + sold changes only through its supplier's
updates (orders move units between the three, never create or lose one) and none is ever
negative; an order's lines reserve all their stock or none; an order changes status only
through its transition table (`model.TRANSITIONS`) and `transitions.transition`, which records
who, when and why and writes the event in the same transaction; a client sees only its own
orders, a supplier only its own supplier orders.
"""
