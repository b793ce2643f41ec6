"""Events: the outbox every state change writes its event to, in the same transaction."""
