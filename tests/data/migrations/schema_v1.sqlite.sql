-- The tables digestbot created before Alembic (schema_version 1), as its metadata.create_all
-- emitted them on sqlite; frozen: tests/test_migrations.py builds a database of that time from it.

CREATE TABLE digests (
	id VARCHAR(300) NOT NULL,
	subscriber_id VARCHAR(200) NOT NULL,
	slot DATETIME NOT NULL,
	status VARCHAR(20) NOT NULL,
	channel VARCHAR(50) NOT NULL,
	created_at DATETIME NOT NULL,
	sent_at DATETIME,
	attempts INTEGER NOT NULL,
	receipt TEXT NOT NULL,
	reason TEXT NOT NULL,
	more INTEGER NOT NULL,
	owner VARCHAR(200) NOT NULL,
	lease_until DATETIME,
	PRIMARY KEY (id),
	CONSTRAINT uq_digest_slot UNIQUE (subscriber_id, slot)
);

CREATE TABLE entries (
	id VARCHAR(300) NOT NULL,
	title TEXT NOT NULL,
	summary TEXT NOT NULL,
	url TEXT NOT NULL,
	authors TEXT NOT NULL,
	published DATETIME NOT NULL,
	source VARCHAR(200) NOT NULL,
	tags TEXT NOT NULL,
	extra TEXT NOT NULL,
	first_seen DATETIME NOT NULL,
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_entries_first_seen ON entries (first_seen);

CREATE INDEX ix_entries_published ON entries (published);

CREATE TABLE rate_events (
	id INTEGER NOT NULL,
	"key" VARCHAR(100) NOT NULL,
	at DATETIME NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_rate_events_at ON rate_events (at);

CREATE INDEX ix_rate_events_key ON rate_events ("key");

CREATE TABLE schema_version (
	version INTEGER NOT NULL
);

CREATE TABLE source_state (
	name VARCHAR(200) NOT NULL,
	etag TEXT NOT NULL,
	last_modified TEXT NOT NULL,
	cursor TEXT NOT NULL,
	last_fetch DATETIME,
	last_success DATETIME,
	last_error TEXT NOT NULL,
	last_counts TEXT NOT NULL,
	PRIMARY KEY (name)
);

CREATE TABLE subscriber_status (
	subscriber_id VARCHAR(200) NOT NULL,
	status VARCHAR(20) NOT NULL,
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (subscriber_id)
);

CREATE TABLE used_tokens (
	nonce VARCHAR(100) NOT NULL,
	kind VARCHAR(50) NOT NULL,
	used_at DATETIME NOT NULL,
	PRIMARY KEY (nonce)
);

CREATE TABLE web_subscribers (
	id VARCHAR(200) NOT NULL,
	email VARCHAR(320) NOT NULL,
	email_key VARCHAR(320) NOT NULL,
	name TEXT NOT NULL,
	interests TEXT NOT NULL,
	schedule VARCHAR(100) NOT NULL,
	timezone VARCHAR(100) NOT NULL,
	max_items INTEGER NOT NULL,
	status VARCHAR(20) NOT NULL,
	created_at DATETIME NOT NULL,
	updated_at DATETIME NOT NULL,
	requested_at DATETIME NOT NULL,
	confirmed_at DATETIME,
	PRIMARY KEY (id),
	UNIQUE (email_key)
);

CREATE TABLE deliveries (
	subscriber_id VARCHAR(200) NOT NULL,
	entry_id VARCHAR(300) NOT NULL,
	digest_id VARCHAR(300) NOT NULL,
	position INTEGER NOT NULL,
	score FLOAT NOT NULL,
	why TEXT NOT NULL,
	topic VARCHAR(200) NOT NULL,
	CONSTRAINT uq_delivery_entry UNIQUE (subscriber_id, entry_id),
	FOREIGN KEY(entry_id) REFERENCES entries (id),
	FOREIGN KEY(digest_id) REFERENCES digests (id)
);

CREATE INDEX ix_deliveries_digest_id ON deliveries (digest_id);

CREATE TABLE feedback (
	subscriber_id VARCHAR(200) NOT NULL,
	entry_id VARCHAR(300) NOT NULL,
	vote INTEGER NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (subscriber_id, entry_id),
	FOREIGN KEY(entry_id) REFERENCES entries (id)
);
