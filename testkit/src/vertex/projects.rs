//! Project ids and project numbers, as Vertex AI treats them (DESIGN.md §10).
//!
//! Callers name a project by id (`ml-finetune`) or by number (`123456789012`); Vertex AI accepts
//! both and answers every resource name with the number, for example a copy requested under
//! `projects/ml-finetune/locations/us-central1` runs as
//! `projects/123456789012/locations/us-central1/operations/…`. Resource-name format from
//! `google.cloud.aiplatform.v1` (`projects/{project}/locations/{location}/models/{model}`, where
//! `{project}` is either form).
//!
//! # How the fake picks numbers
//! There is no Resource Manager to ask, so [`project_number`] derives the number from the id:
//! the 64-bit FNV-1a hash of the id, folded into the twelve-digit range `100000000000..=999999999999`
//! (real numbers are twelve digits too). It is a pure function, so a test can compute the number
//! of any id without a running fake, and every run of every test gets the same number. A segment
//! made only of digits already is a number (project ids must start with a letter) and maps to
//! itself. Two ids could in theory share a number; with 9×10¹¹ numbers and the hundreds of ids a
//! test suite uses, the chance is about 10⁻⁷, and [`ProjectNumbers`] keeps the map so a test can
//! check it.

use std::collections::BTreeMap;

/// The project number Vertex AI would answer for `project` (an id or already a number).
pub fn project_number(project: &str) -> String {
    if is_number(project) {
        return project.to_string();
    }
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let hash = project.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    (100_000_000_000 + hash % 900_000_000_000).to_string()
}

/// `name` with its `projects/{id}` segment replaced by the project number, as Vertex AI returns
/// it: `projects/src/locations/l/models/7@2` → `projects/1…/locations/l/models/7@2`. Names that
/// do not start with `projects/` are returned unchanged.
pub fn numbered(name: &str) -> String {
    match split_project(name) {
        Some((project, rest)) => format!("projects/{}{rest}", project_number(project)),
        None => name.to_string(),
    }
}

fn is_number(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

/// `projects/{p}{rest}` → (`p`, `rest`), where `rest` is empty or starts with `/`.
fn split_project(name: &str) -> Option<(&str, &str)> {
    let after = name.strip_prefix("projects/")?;
    let end = after.find('/').unwrap_or(after.len());
    Some((&after[..end], &after[end..]))
}

/// `projects/{number}/locations/{location}/…` → (`number`, `location`), for quota accounting.
pub(crate) fn project_and_location(name: &str) -> Option<(&str, &str)> {
    let (project, rest) = split_project(name)?;
    let location = rest.strip_prefix("/locations/")?;
    let location = &location[..location.find('/').unwrap_or(location.len())];
    Some((project, location))
}

/// Every project id the fake has seen, with its number, so that tests can read the map.
#[derive(Debug, Default)]
pub(crate) struct ProjectNumbers {
    by_id: BTreeMap<String, String>,
}

impl ProjectNumbers {
    /// [`numbered`], remembering the id it replaced.
    pub fn canonical(&mut self, name: &str) -> String {
        if let Some((project, _)) = split_project(name)
            && !is_number(project)
        {
            self.by_id
                .entry(project.to_string())
                .or_insert_with(|| project_number(project));
        }
        numbered(name)
    }

    pub fn map(&self) -> BTreeMap<String, String> {
        self.by_id.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_twelve_digits_stable_and_numbers_map_to_themselves() {
        let number = project_number("ml-finetune");
        assert_eq!(number.len(), 12, "{number}");
        assert!(is_number(&number));
        assert_eq!(project_number("ml-finetune"), number);
        assert_ne!(project_number("ml-finetune-2"), number);
        assert_eq!(project_number("123456789012"), "123456789012");
    }

    #[test]
    fn only_the_project_segment_is_rewritten() {
        let n = project_number("src");
        let cases = [
            (
                "projects/src/locations/l/models/7@2",
                format!("projects/{n}/locations/l/models/7@2"),
            ),
            ("projects/src", format!("projects/{n}")),
            (
                "projects/42/locations/l",
                "projects/42/locations/l".to_string(),
            ),
            ("locations/l", "locations/l".to_string()),
        ];
        for (name, want) in cases {
            assert_eq!(numbered(name), want, "{name}");
        }
    }

    #[test]
    fn scope_is_the_project_and_location() {
        assert_eq!(
            project_and_location("projects/42/locations/eu/models/m"),
            Some(("42", "eu"))
        );
        assert_eq!(project_and_location("projects/42/models/m"), None);
    }

    #[test]
    fn the_map_records_ids_but_not_numbers() {
        let mut numbers = ProjectNumbers::default();
        numbers.canonical("projects/src/locations/l");
        numbers.canonical("projects/77/locations/l");
        let map = numbers.map();
        assert_eq!(map.len(), 1);
        assert_eq!(map["src"], project_number("src"));
    }
}
