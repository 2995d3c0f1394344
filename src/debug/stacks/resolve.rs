//! Symbol resolution, done only when a report or profile is made (never on
//! the allocation path): return addresses → function, file and line, with
//! inlined functions expanded and the debugger's and allocator's own frames
//! dropped from the top.

use super::depot::frames;

/// One resolved frame (one of possibly several per address, where functions
/// were inlined).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Frame {
    /// The return address it came from.
    pub(crate) ip: usize,
    /// Demangled function name (the address in hex if unknown).
    pub(crate) function: String,
    pub(crate) file: Option<String>,
    pub(crate) line: u32,
}

impl Frame {
    /// `function (file:line)` or `function`.
    pub(crate) fn line_text(&self) -> String {
        match &self.file {
            Some(f) => format!("{} ({f}:{})", self.function, self.line),
            None => self.function.clone(),
        }
    }
}

/// Prefixes of frames that belong to the allocation machinery.
const INTERNAL: [&str; 9] = [
    "rustydb_memory::debug::",
    "<rustydb_memory::debug::",
    "backtrace::",
    "__rustc::",
    "__rust_",
    "alloc::alloc::",
    "std::thread::local::",
    "std::sys::thread_local::",
    "core::ops::function::",
];

/// Whether a frame belongs to the allocator or debugger (dropped from the top
/// of a stack).
pub(crate) fn is_internal(function: &str) -> bool {
    INTERNAL.iter().any(|p| function.starts_with(p))
}

/// The frames of address `ip`, innermost (most inlined) first.
pub(crate) fn resolve_ip(ip: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    backtrace::resolve(ip as *mut core::ffi::c_void, |sym| {
        out.push(Frame {
            ip,
            function: sym
                .name()
                .map(|n| format!("{n:#}"))
                .unwrap_or_else(|| format!("{ip:#x}")),
            file: sym.filename().map(|f| f.display().to_string()),
            line: sym.lineno().unwrap_or(0),
        });
    });
    if out.is_empty() {
        out.push(Frame {
            ip,
            function: format!("{ip:#x}"),
            file: None,
            line: 0,
        });
    }
    out
}

/// Resolves stack `id` to `function (file:line)` lines, innermost first,
/// without the debugger's and the allocator's own frames at the top.
pub(crate) fn resolve(id: u32) -> Vec<String> {
    let all: Vec<Frame> = frames(id).into_iter().flat_map(resolve_ip).collect();
    let first = all
        .iter()
        .position(|f| !is_internal(&f.function))
        .unwrap_or(all.len());
    all[first..].iter().map(Frame::line_text).collect()
}
