//! Fieldless enums known by their names (statuses, roles, kinds): one
//! table of variants and names gives `ALL`, `as_str`, `parse` and
//! `Display`, so each name is written once (pure).

/// `names!(Role { Approver => "approver", Admin => "admin" })` beside
/// `enum Role`: `ALL` lists the variants in the table's order, `as_str`
/// and `Display` give a variant's name, `parse` the variant of a name.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            pub fn parse(s: &str) -> Option<$ty> {
                $ty::ALL.into_iter().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use names;

#[cfg(test)]
mod tests {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Light {
        Red,
        Green,
    }

    super::names!(Light {
        Green => "green",
        Red => "red",
    });

    #[test]
    fn every_name_parses_back_to_its_variant_in_table_order() {
        assert_eq!(Light::ALL, [Light::Green, Light::Red]);
        for light in Light::ALL {
            assert_eq!(Light::parse(light.as_str()), Some(light));
            assert_eq!(light.to_string(), light.as_str());
        }
        assert_eq!(Light::parse("blue"), None);
        assert_eq!(Light::Red.as_str(), "red");
    }
}
