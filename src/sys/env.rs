//! Reading `RUSTYDB_MEM_*` options without allocating (`std::env::var` allocates a
//! `String`, which the allocator cannot do while initialising itself).

unsafe extern "C" {
    /// libc's environment block (`environ(7)`).
    static environ: *const *const core::ffi::c_char;
}

/// Whether libc has set up the environment yet. False only in a preloaded
/// `malloc` called by the dynamic linker before libc's initialisation (and in a
/// process that cleared its environment with `clearenv`).
pub(crate) fn environment_ready() -> bool {
    // SAFETY: reads the pointer only, the access `getenv` itself makes (and
    // with the same caveat: `setenv` on another thread must not run meanwhile).
    !unsafe { environ }.is_null()
}

/// Parses the environment variable `name` (a NUL-terminated byte string) as a
/// size: decimal digits with an optional `k`/`m`/`g` suffix (powers of 1024).
/// Missing, empty, malformed or overflowing values give `None`.
pub(crate) fn env_usize(name: &core::ffi::CStr) -> Option<usize> {
    // SAFETY: getenv reads the process environment and returns either null or a
    // pointer to a NUL-terminated string that stays valid until the environment is
    // modified; we copy out of it immediately.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null result of getenv is a valid C string (see above).
    let bytes = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
    parse_size(bytes)
}

/// Parses `123`, `64k`, `2M`, `1g` (case-insensitive suffix, powers of 1024).
pub(crate) fn parse_size(bytes: &[u8]) -> Option<usize> {
    let (digits, mult) = match bytes.last()? {
        b'k' | b'K' => (&bytes[..bytes.len() - 1], 1usize << 10),
        b'm' | b'M' => (&bytes[..bytes.len() - 1], 1 << 20),
        b'g' | b'G' => (&bytes[..bytes.len() - 1], 1 << 30),
        _ => (bytes, 1),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: usize = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as usize)?;
    }
    v.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_suffixes_and_reject_garbage() {
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"64k"), Some(64 << 10));
        assert_eq!(parse_size(b"2M"), Some(2 << 20));
        assert_eq!(parse_size(b"1g"), Some(1 << 30));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"k"), None);
        assert_eq!(parse_size(b"12x"), None);
        assert_eq!(parse_size(b"-1"), None);
        assert_eq!(parse_size(b"99999999999999999999999"), None);
    }
}
