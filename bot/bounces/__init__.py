"""Bounces and complaints: stop mailing addresses that bounce (README "Bounces and complaints").

`verp` (the signed return path of every email digest), `refusals` (a refusal at send time),
`classify` (a message in the bounce mailbox: DSN, complaint, auto-reply), `policy` (what a
bounce does to a subscriber: suspend, unsubscribe), `mailbox` (the IMAP run of `digestbot bounces`).
Import the modules themselves: this package imports nothing, so the email channel may use `verp`.
"""
