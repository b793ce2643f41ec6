"""Access: operators (team members with roles), suppliers, clients and their API keys.

Invariants: a key's secret is shown once and stored only as a SHA-256 hash; a key serves exactly
one side (admin, supply or store); a publishable key only reads the store; a supplier moves
pending → active → suspended (and back to active) through one transition table.
"""
