"""``jitpam ps``: Microsoft 365 PAM cmdlet lines run against a jitpam server."""
