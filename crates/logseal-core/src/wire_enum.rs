//! `wire_enum!`: an enum whose values are fixed numbers on the wire or on
//! disk, each with the one name CLI output, JSON and the docs use. The table
//! of (variant, number, name) is written once; decoding and naming come from
//! it.

/// Defines a `#[repr]` enum from rows `Variant = NUMBER => "name",` with
/// `FROM(n) -> Option<Self>` (an unknown number is `None`, never a panic) and
/// `name(self) -> &'static str`, and `ALL` and `SLOTS` for tables indexed by
/// the values.
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
            /// Every value, in the table's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// One more than the largest number: the length of an array
            /// indexed by `value as usize`.
            pub const SLOTS: usize = {
                let mut n = 0;
                $( if $value as usize >= n { n = $value as usize + 1; } )+
                n
            };

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::record::{Kind, LifecycleEvent, LossReason, Origin, Source};
    use std::collections::HashSet;

    /// Each table: every value decodes from its own number, no number or
    /// name is used twice, no other number decodes, and SLOTS covers them.
    macro_rules! check_table {
        ($t:ty) => {{
            let mut names = HashSet::new();
            for v in <$t>::ALL {
                assert_eq!(<$t>::from_u8(*v as u8), Some(*v));
                assert!((*v as usize) < <$t>::SLOTS);
                assert!(names.insert(v.name()), "{} twice", v.name());
            }
            let decodable = (0..=255u8).filter(|b| <$t>::from_u8(*b).is_some()).count();
            assert_eq!(decodable, <$t>::ALL.len());
        }};
    }

    #[test]
    fn every_wire_table_is_one_to_one() {
        check_table!(Kind);
        check_table!(Source);
        check_table!(Origin);
        check_table!(LossReason);
        check_table!(LifecycleEvent);
        // The numbers docs/FORMAT.md gives.
        assert_eq!(LossReason::from_u8(5), Some(LossReason::WriteFailed));
        assert_eq!(LossReason::WriteFailed.name(), "write-failed");
        assert_eq!((LossReason::SLOTS, Source::SLOTS), (6, 9));
    }
}
