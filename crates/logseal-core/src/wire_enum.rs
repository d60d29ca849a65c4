//! `wire_enum!`: an enum whose values are fixed numbers on the wire or on
//! disk, each with the one name CLI output, JSON and the docs use. The table
//! of (variant, number, name) is written once; decoding and naming come from
//! it.

/// Defines a `#[repr]` enum from rows `Variant = NUMBER => "name",` with
/// `FROM(n) -> Option<Self>` (an unknown number is `None`, never a panic) and
/// `name(self) -> &'static str`.
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $repr:ident, $from:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr($repr)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// The value a number encodes, if any.
            pub fn $from(v: $repr) -> Option<$name> {
                match v {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The name used in CLI output, JSON and docs.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }
    };
}
