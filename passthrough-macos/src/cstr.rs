//! [`CStrBuf`]: a NUL-terminated string built in a fixed-size buffer, so that the paths and
//! names the host calls take (`/.vol/<dev>/<ino>/<name>`, a component, an attribute name under
//! its namespace, `/proc/self/fd/<N>`) cost no heap allocation per request.

use std::ffi::CStr;
use std::fmt;
use std::ops::Deref;

/// Why bytes were not appended to a [`CStrBuf`] (which is left as it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CStrBufError {
    /// The bytes hold a NUL.
    Nul,
    /// With their NUL they would not fit the buffer.
    TooLong,
}

/// A C string of at most `N - 1` bytes and its NUL, in place (no heap). Built with
/// [`push`](Self::push) or [`std::fmt::Write`] (numbers in decimal, as `write!` formats them);
/// derefs to [`CStr`], as `CString` does.
#[derive(Clone)]
pub struct CStrBuf<const N: usize> {
    /// The bytes, then NUL (`buf[len]` is always 0, no byte before it is).
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> CStrBuf<N> {
    /// The empty string.
    #[must_use]
    pub const fn new() -> CStrBuf<N> {
        const { assert!(N > 0, "room for the NUL") };
        CStrBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// `bytes` as a C string.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn from_bytes(bytes: &[u8]) -> Result<CStrBuf<N>, CStrBufError> {
        let mut s = CStrBuf::new();
        s.push(bytes)?;
        Ok(s)
    }

    /// Appends `bytes`.
    ///
    /// # Errors
    ///
    /// [`CStrBufError::Nul`] if they hold a NUL, [`CStrBufError::TooLong`] if they do not fit
    /// with the NUL; the string is then unchanged.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), CStrBufError> {
        if bytes.contains(&0) {
            return Err(CStrBufError::Nul);
        }
        let end = self
            .len
            .checked_add(bytes.len())
            .filter(|&end| end < N)
            .ok_or(CStrBufError::TooLong)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(CStrBufError::TooLong)?
            .copy_from_slice(bytes);
        if let Some(nul) = self.buf.get_mut(end) {
            *nul = 0;
        }
        self.len = end;
        Ok(())
    }

    /// The string.
    #[must_use]
    pub fn as_cstr(&self) -> &CStr {
        // `buf[len]` is the first NUL.
        CStr::from_bytes_until_nul(&self.buf).unwrap_or(c"")
    }

    /// The bytes, without the NUL.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The length in bytes, without the NUL.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for CStrBuf<N> {
    fn default() -> CStrBuf<N> {
        CStrBuf::new()
    }
}

impl<const N: usize> Deref for CStrBuf<N> {
    type Target = CStr;

    fn deref(&self) -> &CStr {
        self.as_cstr()
    }
}

impl<const N: usize> AsRef<CStr> for CStrBuf<N> {
    fn as_ref(&self) -> &CStr {
        self.as_cstr()
    }
}

impl<const N: usize> fmt::Write for CStrBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

impl<const N: usize> fmt::Debug for CStrBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_cstr(), f)
    }
}

impl<const N: usize> PartialEq for CStrBuf<N> {
    fn eq(&self, other: &CStrBuf<N>) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for CStrBuf<N> {}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn builds_in_place() {
        let mut s = CStrBuf::<16>::new();
        assert_eq!(s.as_cstr(), c"");
        assert!(s.is_empty());
        s.push(b"/a").unwrap();
        write!(s, "/{}/{}", -1, 42u64).unwrap();
        assert_eq!(s.as_cstr(), c"/a/-1/42");
        assert_eq!(s.as_bytes(), b"/a/-1/42");
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn refuses_nul_and_overflow_unchanged() {
        let mut s = CStrBuf::<4>::from_bytes(b"ab").unwrap();
        assert_eq!(s.push(b"c\0"), Err(CStrBufError::Nul));
        assert_eq!(s.push(b"cd"), Err(CStrBufError::TooLong));
        assert_eq!(s.as_cstr(), c"ab");
        // Three bytes and the NUL fill it.
        s.push(b"c").unwrap();
        assert_eq!(s.as_cstr(), c"abc");
        assert_eq!(s.push(b"d"), Err(CStrBufError::TooLong));
        assert!(write!(s, "{}", 1).is_err());
        assert_eq!(
            CStrBuf::<4>::from_bytes(b"abcd"),
            Err(CStrBufError::TooLong)
        );
    }
}
