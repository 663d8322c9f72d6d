"""@esign-tick: the scheduler's work (expiry, due reminders) for a REST client."""
