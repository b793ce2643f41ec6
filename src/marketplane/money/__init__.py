"""Money: the double-entry ledger (and, as it grows, commercial terms, payouts, statements).

Invariants: every transaction has two or more postings of whole minor units that sum to zero
in each currency (so all balances in a currency sum to zero); a posted entry is never changed or
removed (the database refuses it; corrections are reversing transactions); a business key posts
once (again with the same postings: the same transaction; with others: refused); a supplier's
payable never goes below zero through a guarded posting, checked and moved in one statement.
Currencies never mix: there is no conversion.
"""
