use super::paced::project_of;
use super::*;

fn budget(copies: f64, reads: f64, instances: u32) -> Budget {
    Budget::new(Rates {
        copies_per_minute: copies,
        reads_per_minute: reads,
        instances,
        time_scale: 1.0,
    })
}

#[tokio::test(start_paused = true)]
async fn reads_are_paced_to_the_instance_share_after_a_ten_second_burst() {
    // 120 reads a minute over 2 instances: 1 a second each, bursts of 10.
    let b = budget(30.0, 120.0, 2);
    assert_eq!(b.share(Kind::Read), 60.0);
    let t0 = Instant::now();
    for _ in 0..10 {
        assert!(b.read("p", "eu").await);
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "the burst goes at once");
    for _ in 0..20 {
        assert!(b.read("p", "eu").await);
    }
    let paced = t0.elapsed();
    assert!(
        paced >= Duration::from_secs(19) && paced <= Duration::from_secs(21),
        "{paced:?}"
    );
    // Another region, and another project in the same region, have their own pacers.
    let t1 = Instant::now();
    assert!(b.read("p", "us").await);
    assert!(b.read("other-project", "eu").await);
    assert_eq!(t1.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_read_further_than_twenty_seconds_away_is_refused_without_reserving() {
    // 6 reads a minute: one every 10 s, burst 1.
    let b = budget(30.0, 6.0, 1);
    // Four reads at the same moment: slots at 0, 10 and 20 s are taken; the fourth
    // would be 30 s away and is refused at once.
    let t0 = Instant::now();
    let (a, b1, c, d) = tokio::join!(
        b.read("p", "eu"),
        b.read("p", "eu"),
        b.read("p", "eu"),
        async {
            let refused = !b.read("p", "eu").await;
            (refused, t0.elapsed())
        }
    );
    assert!(a && b1 && c, "the first three wait for their slots");
    assert_eq!(d, (true, Duration::ZERO), "the fourth is refused at once");
    assert_eq!(t0.elapsed(), Duration::from_secs(20));
    // The refusal reserved nothing: the next slot is 10 s after the last one taken.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        b.read("p", "eu").await,
        "nothing was reserved by the refusal"
    );
}

#[tokio::test(start_paused = true)]
async fn a_copy_slot_is_taken_only_when_one_is_free_soon_enough() {
    // 6 copies a minute: one every 10 s, burst 1.
    let b = budget(6.0, 300.0, 1);
    assert!(b.copy_within("p", "eu", Duration::ZERO).await);
    assert!(
        !b.copy_within("p", "eu", Duration::from_secs(5)).await,
        "next is 10 s away"
    );
    let t0 = Instant::now();
    assert!(b.copy_within("p", "eu", Duration::from_secs(11)).await);
    assert_eq!(t0.elapsed(), Duration::from_secs(10), "waited for its slot");
}

#[test]
fn a_project_is_one_budget_key_whether_spelled_by_id_or_by_number() {
    let numbers = ProjectNumbers::default();
    assert_eq!(numbers.key("dst-proj"), "dst-proj", "not learned yet");
    let project = crate::domain::names::Project::parse("p", "dst-proj").unwrap();
    numbers.learn(&project, "projects/123456/locations/eu/operations/9");
    assert_eq!(numbers.key("dst-proj"), "123456");
    assert_eq!(numbers.key("123456"), "123456");
    assert_eq!(
        project_of("projects/123456/locations/eu/models/7"),
        "123456"
    );
    assert_eq!(project_of("not-a-name"), "");
}

#[tokio::test(start_paused = true)]
async fn a_project_keeps_one_pacer_when_its_number_is_learned() {
    // 6 copies a minute: one every 10 s, burst 1.
    let numbers = Arc::<ProjectNumbers>::default();
    let b = Budget::with_numbers(
        Rates {
            copies_per_minute: 6.0,
            ..Rates::default()
        },
        numbers.clone(),
    );
    assert!(b.copy_within("dst-proj", "eu", Duration::ZERO).await);
    let project = crate::domain::names::Project::parse("p", "dst-proj").unwrap();
    numbers.learn(&project, "projects/123456/locations/eu/operations/9");
    assert!(
        !b.copy_within("dst-proj", "eu", Duration::from_secs(5))
            .await,
        "no second burst under the number"
    );
    assert!(!b.copy_within("123456", "eu", Duration::from_secs(5)).await);
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_the_region_back() {
    let b = budget(600.0, 600.0, 1);
    b.back_off(Kind::Copy, ("p", "eu"), COPY_BACKOFF);
    assert!(!b.copy_within("p", "eu", Duration::from_secs(29)).await);
    assert!(b.copy_within("p", "us", Duration::ZERO).await);
    let t0 = Instant::now();
    b.back_off(Kind::Read, ("p", "eu"), READ_BACKOFF);
    assert!(b.read("p", "eu").await);
    assert!(t0.elapsed() >= READ_BACKOFF, "{:?}", t0.elapsed());
}
