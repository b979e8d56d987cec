//! The ingest API: the producer's HTTP face (in progress).
