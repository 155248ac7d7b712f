//! SNS decoder and encoder tests.
