//! `ContextBuilder`: chunk sizes and limit of a new root context.

use core::ptr;
use std::borrow::Cow;

use super::context::MemoryContext;

/// How to build a context: chunk sizes and limit.
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    pub(super) name: Cow<'static, str>,
    pub(super) limit: Option<usize>,
    pub(super) initial_chunk: usize,
    pub(super) max_chunk: usize,
}

impl ContextBuilder {
    /// Limits the bytes this context (and its subtree) may hand out.
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = Some(bytes);
        self
    }
    /// First chunk size (default 64 KiB; at least 1 KiB).
    pub fn initial_chunk(mut self, bytes: usize) -> Self {
        self.initial_chunk = bytes.max(1024);
        self
    }
    /// Largest chunk size reached by doubling (default 64 MiB).
    pub fn max_chunk(mut self, bytes: usize) -> Self {
        self.max_chunk = bytes.max(1024);
        self
    }
    /// Builds a root context.
    pub fn build(self) -> MemoryContext<'static> {
        MemoryContext::new_inner(self, ptr::null())
    }
}
