//! The archive's tables are declared three times: the Arrow schemas
//! (`flyhigh_schemas::archive`, what the files hold), the Glue tables of
//! `infra/archive.yaml` (what Athena reads), and the Athena DDL of
//! `docs/analytics.md` (what analysts copy). This test keeps the three equal.

use std::collections::BTreeMap;
use std::path::Path;

use flyhigh_schemas::archive::{ArchiveTable, PARTITION_COLUMNS, athena_ddl};

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(name, type)` of the Glue columns listed under `# table: NAME`.
fn glue_columns(yaml: &str, table: &str) -> Vec<(String, String)> {
    let marker = format!("# table: {table}");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != marker).skip(1);
    assert_eq!(
        lines.next().map(str::trim),
        Some("Columns:"),
        "infra/archive.yaml: `{marker}` must sit right above the table's Columns:"
    );
    let mut out = Vec::new();
    let mut indent = None;
    let mut pending: Option<String> = None;
    for line in lines {
        let depth = line.len() - line.trim_start().len();
        let text = line.trim();
        if let Some(name) = text.strip_prefix("- Name: ") {
            if indent.is_some_and(|i| i != depth) {
                break;
            }
            indent = Some(depth);
            pending = Some(name.to_string());
        } else if let Some(ty) = text.strip_prefix("Type: ") {
            let name = pending.take().expect("a Type: after its Name:");
            out.push((name, ty.trim_matches('"').to_string()));
        } else if text.starts_with("Comment:") || text.is_empty() {
            continue;
        } else {
            break;
        }
    }
    out
}

/// The `projection.*` parameters of the Glue table located under `event_type=X/`.
fn glue_projection(yaml: &str, event_type: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.contains("storage.location.template")
                && l.contains(&format!("event_type={event_type}/"))
        })
        .unwrap_or_else(|| {
            panic!("infra/archive.yaml: no storage.location.template for {event_type}")
        });
    lines[at.saturating_sub(12)..at]
        .iter()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(k, _)| k.starts_with("projection."))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// The `projection.*` properties of a DDL statement.
fn ddl_projection(ddl: &str) -> BTreeMap<String, String> {
    ddl.lines()
        .filter_map(|l| l.trim().trim_end_matches(',').split_once(" = "))
        .map(|(k, v)| {
            (
                k.trim_matches('\'').to_string(),
                v.trim_matches('\'').to_string(),
            )
        })
        .filter(|(k, _)| k.starts_with("projection."))
        .collect()
}

#[test]
fn the_glue_tables_have_the_arrow_schemas_columns_in_order() {
    let yaml = repo_file("infra/archive.yaml");
    for table in ArchiveTable::ALL {
        let expected: Vec<(String, String)> = table
            .columns()
            .iter()
            .map(|c| (c.name.to_string(), c.kind.athena().to_string()))
            .collect();
        assert_eq!(glue_columns(&yaml, table.name()), expected, "{table}");
    }
}

#[test]
fn the_glue_tables_project_the_same_partitions_as_the_ddl() {
    let yaml = repo_file("infra/archive.yaml");
    for table in ArchiveTable::ALL {
        let ddl = athena_ddl(table, "flyhigh", "s3://b/archive");
        let projection = ddl_projection(&ddl);
        assert!(projection.len() >= 9, "{ddl}");
        assert_eq!(
            glue_projection(&yaml, table.event_type().as_str()),
            projection,
            "{table}"
        );
    }
    // Each table's PartitionKeys: dt string, hour int.
    let lines: Vec<&str> = yaml.lines().map(str::trim).collect();
    for (name, ty) in PARTITION_COLUMNS {
        let declared = lines
            .windows(2)
            .filter(|w| w[0] == format!("- Name: {name}") && w[1] == format!("Type: {ty}"))
            .count();
        assert_eq!(
            declared, 3,
            "partition key {name} {ty} in each of the three tables"
        );
    }
}

#[test]
fn the_ddl_in_the_analytics_docs_is_the_generated_one() {
    let docs = repo_file("docs/analytics.md");
    for table in ArchiveTable::ALL {
        let marker = format!("```sql\n-- athena: ddl {}\n", table.name());
        let start = docs.find(&marker).unwrap_or_else(|| {
            panic!("docs/analytics.md: no block starting `-- athena: ddl {table}`")
        }) + marker.len();
        let end = start + docs[start..].find("```").expect("the block ends");
        assert_eq!(
            &docs[start..end],
            athena_ddl(table, "flyhigh", "s3://YOUR-BUCKET/archive"),
            "docs/analytics.md: the DDL of {table} differs from `flyhigh archive ddl` (paste its output)"
        );
    }
}
