"""The fleet database: ship a station's runs to a central PostgreSQL through an outbox."""
