"""The reference application: web imports with guaranteed outcome notifications."""
