"""control/safety."""
