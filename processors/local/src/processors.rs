//! [`Processors`]: which event source mappings a deployment runs, as
//! `flyhigh demo --processors` names them.

/// A name [`Processors::parse`] does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProcessor(pub String);

impl std::fmt::Display for UnknownProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown processor {:?}: name inventory, demand, archive, decode, all or none",
            self.0
        )
    }
}

impl std::error::Error for UnknownProcessor {}

/// Which event source mappings a deployment runs. All three make the pipeline; one
/// alone, or none, measures what it costs (`flyhigh demo --processors`), and
/// `decode` adds a mapping whose handler only takes each batch apart and decodes
/// it, the baseline every processor pays before its own work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processors {
    pub inventory: bool,
    pub demand: bool,
    pub archive: bool,
    /// The decode-only baseline mapping.
    pub decode: bool,
}

impl Processors {
    /// The pipeline: inventory, demand and archive.
    pub const ALL: Processors = Processors {
        inventory: true,
        demand: true,
        archive: true,
        decode: false,
    };

    /// The names as the CLI takes them: `all`, `none`, or a comma-separated list of
    /// `inventory`, `demand`, `archive`, `decode`.
    ///
    /// # Errors
    ///
    /// An unknown name.
    pub fn parse(list: &str) -> Result<Processors, UnknownProcessor> {
        let mut p = Processors {
            inventory: false,
            demand: false,
            archive: false,
            decode: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => {
                    p = Processors {
                        decode: p.decode,
                        ..Processors::ALL
                    }
                }
                "none" => {}
                "inventory" => p.inventory = true,
                "demand" => p.demand = true,
                "archive" => p.archive = true,
                "decode" => p.decode = true,
                other => return Err(UnknownProcessor(other.to_string())),
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors_parse_as_the_cli_names_them() {
        assert_eq!(Processors::parse("all"), Ok(Processors::ALL));
        let none = Processors::parse("none").unwrap();
        assert!(!none.inventory && !none.demand && !none.archive && !none.decode);
        let some = Processors::parse("inventory, decode").unwrap();
        assert!(some.inventory && some.decode && !some.demand && !some.archive);
        assert_eq!(
            Processors::parse("inventory,archiv"),
            Err(UnknownProcessor("archiv".into()))
        );
    }
}
