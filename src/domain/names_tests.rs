//! Table tests of the resource-name parsers: what Vertex AI and Resource Manager accept, and
//! the hostile shapes of the probe in issue 28.

use super::*;

#[test]
fn locations_are_region_names_and_nothing_that_could_be_a_host() {
    for ok in [
        "us-central1",
        "europe-west4",
        "europe-west12",
        "me-central2",
        "northamerica-northeast1",
        "australia-southeast2",
        "africa-south1",
    ] {
        assert!(is_location(ok), "{ok}");
        assert_eq!(Location::parse("l", ok).unwrap().as_str(), ok);
    }
    for bad in [
        "127.0.0.1:47300#",
        "127.0.0.1",
        "localhost",
        "global",
        "us",
        "eu",
        "us-central",
        "us-central123",
        "us-central1-a",
        "us-central1.evil.example",
        "US-CENTRAL1",
        "us_central1",
        "-central1",
        "u-central1",
        "us-c1",
        "us-central1#",
        "evil.example.com#",
        "",
    ] {
        assert!(!is_location(bad), "{bad}");
        let e = Location::parse("destination.location", bad).unwrap_err();
        assert_eq!(e.field, "destination.location");
        assert!(e.rule.contains("region"), "{}", e.rule);
    }
}

/// The probe of issue 28 sent project number `0`; Google numbers projects from 1.
#[test]
fn a_project_is_an_id_or_a_number_but_never_zero() {
    for ok in ["my-proj-123", "dst-proj", "1", "234567890123"] {
        assert!(Project::parse("p", ok).is_ok(), "{ok}");
    }
    for bad in [
        "0", "00", "0123", "Proj-123", "short", "my-proj-", "a:b", "",
    ] {
        let e = Project::parse("destination.project", bad).unwrap_err();
        assert_eq!(e.field, "destination.project", "{bad}");
        assert!(e.rule.contains("not 0"), "{}", e.rule);
    }
    let zero = "projects/0/locations/us-central1/models/7";
    assert!(ModelName::parse("source_model", zero).is_err());
}

#[test]
fn model_names_check_every_segment() {
    let m = ModelName::parse(
        "source_model",
        "projects/src-proj/locations/us-central1/models/7704127342733426688@3",
    )
    .unwrap();
    assert_eq!(m.location, "us-central1");
    assert_eq!(m.version.as_deref(), Some("3"));
    for bad in [
        "projects/p-1234/locations/127.0.0.1:47300#/models/7",
        "projects/src-proj/locations/us-central1/models/Bad_ID",
        "projects/src-proj/locations/us-central1/models/-x",
        "projects/src-proj/locations/us-central1/models/7@",
        "projects/src-proj/locations/us-central1/models/7@a/b",
        "projects/src-proj/locations/us-central1/models/7/extra",
    ] {
        assert!(ModelName::parse("source_model", bad).is_err(), "{bad}");
    }
}

#[test]
fn kms_key_names_need_ids_of_letters_digits_underscores_and_hyphens() {
    let ok = "projects/dst-proj/locations/europe-west4/keyRings/ring_1/cryptoKeys/key-A";
    assert!(KmsKeyName::parse("kms_key_name", ok, "europe-west4").is_ok());
    for bad in [
        "projects/dst-proj/locations/europe-west4/keyRings/r#/cryptoKeys/k",
        "projects/dst-proj/locations/europe-west4/keyRings/r/cryptoKeys/k.k",
        "projects/0/locations/europe-west4/keyRings/r/cryptoKeys/k",
    ] {
        assert!(
            KmsKeyName::parse("kms_key_name", bad, "europe-west4").is_err(),
            "{bad}"
        );
    }
}
