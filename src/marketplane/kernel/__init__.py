"""The shared kernel: money, identifiers, time, errors and cursors.

Standard library only; every context may use it, it uses no context.
"""
