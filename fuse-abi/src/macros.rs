//! Declaration helpers for wire structs.

/// Declares a `#[repr(C)]` wire struct with the full zerocopy marker set and a compile-time
/// assertion that its size is the C size.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        $cname:literal $name:ident = $size:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[doc = ""]
        #[doc = concat!("The kernel's `struct ", $cname, "` (", stringify!($size), " bytes).")]
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
            zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout,
            zerocopy::Immutable, zerocopy::Unaligned,
        )]
        #[repr(C)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[doc = concat!("`", $cname, ".", stringify!($field), "`.")]
                pub $field: $ty,
            )*
        }
        const _: () = assert!(core::mem::size_of::<$name>() == $size);
    };
}
