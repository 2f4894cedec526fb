"""The vocabulary every room shares: statuses, the audit event, the pure review rules."""
