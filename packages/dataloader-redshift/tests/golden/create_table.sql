CREATE TABLE "dw"."customers" (
	id BIGINT NOT NULL,
	first_name VARCHAR(65535),
	balance NUMERIC(12, 2),
	active BOOLEAN,
	score DOUBLE PRECISION,
	born DATE,
	updated_at TIMESTAMPTZ,
	seen_at TIMESTAMP WITHOUT TIME ZONE
);
