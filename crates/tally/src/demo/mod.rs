//! Demo dataset generator (in progress).
