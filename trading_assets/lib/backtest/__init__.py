"""Backtest and paper trading: fills that walk the book, and the replay of the served path."""
