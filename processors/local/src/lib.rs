//! The local deployment (in progress).
