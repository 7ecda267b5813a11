//! What follows an attempt: retries and their backoff, Retry-After, giving up, the dispatch
//! deadline, the headers each attempt carries, and names kept after a task ran.

use crate::support::*;
use google_cloud_gax::error::rpc::Code;
use google_cloud_tasks_v2::model::{HttpRequest, OidcToken, Task};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::{OidcIssuer, QueueConfig};
use tokio::net::TcpListener;

#[tokio::test]
async fn failures_are_retried_with_doubling_backoff_until_a_success() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[503, 503, 503], Duration::ZERO);
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("retry", &url))
        .await
        .expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let dispatches = fake.dispatches();
    let statuses: Vec<u16> = dispatches.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [503, 503, 503, 200]);
    let attempts: Vec<u32> = dispatches.iter().map(|d| d.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    let gaps: Vec<Duration> = dispatches.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, want_ms) in gaps.iter().zip([100, 200, 400]) {
        let want = Duration::from_millis(want_ms);
        assert!(
            *gap >= want && *gap < want + Duration::from_millis(300),
            "{gaps:?}"
        );
    }
    let hits = receiver.hits();
    let retries: Vec<&str> = hits
        .iter()
        .map(|h| header(h, "x-cloudtasks-taskretrycount"))
        .collect();
    assert_eq!(retries, ["0", "1", "2", "3"]);
    // 5xx answers never reached the execution phase.
    assert_eq!(header(&hits[3], "x-cloudtasks-taskexecutioncount"), "0");
    assert_eq!(header(&hits[3], "x-cloudtasks-taskpreviousresponse"), "503");
    // Only retries say why they happen.
    assert!(
        hits[0]
            .headers
            .get("x-cloudtasks-taskretryreason")
            .is_none()
    );
    assert!(
        hits[1..]
            .iter()
            .all(|h| !header(h, "x-cloudtasks-taskretryreason").is_empty())
    );
    // A task done keeps its name reserved.
    let again = create(&client, QUEUE, http_task("retry", &url)).await;
    assert_eq!(code(again), Some(Code::AlreadyExists));
}

#[tokio::test]
async fn a_task_is_deleted_after_its_last_allowed_attempt_fails() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(20),
        max_attempts: 3,
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[500; 10], Duration::ZERO);
    let url = receiver.serve().await;
    // No server on this port: the attempts get no answer at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let nowhere = format!("http://{}/run", closed.local_addr().expect("addr"));
    drop(closed);
    create(&client, QUEUE, http_task("failing", &url))
        .await
        .expect("create");
    create(&client, QUEUE, http_task("unanswered", &nowhere))
        .await
        .expect("create");
    wait_until("both given up", || fake.given_up().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dispatches = fake.dispatches();
    let statuses = |task: &str| -> Vec<u16> {
        let name = task_name(task);
        let rows = dispatches.iter().filter(|d| d.task == name);
        rows.map(|d| d.status).collect()
    };
    assert_eq!(statuses("failing"), [500, 500, 500]);
    assert_eq!(statuses("unanswered"), [0, 0, 0]);
    assert_eq!(fake.pending(QUEUE), 0);
    let get = client
        .get_task()
        .set_name(task_name("failing"))
        .send()
        .await;
    assert_eq!(code(get), Some(Code::NotFound));
    // A task that gave up keeps its name reserved too.
    let again = create(&client, QUEUE, http_task("failing", &url)).await;
    assert_eq!(code(again), Some(Code::AlreadyExists));
}

#[tokio::test]
async fn retry_after_on_a_503_holds_the_retry_back() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(100),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver {
        retry_after: Some("1"),
        ..Receiver::scripted(&[503], Duration::ZERO)
    };
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("after", &url))
        .await
        .expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let dispatches = fake.dispatches();
    let gap = dispatches[1].at - dispatches[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn attempts_carry_the_cloud_tasks_headers_and_a_verifiable_oidc_token() {
    let issuer = OidcIssuer::start("unused", "unused@example.com")
        .await
        .expect("issuer");
    let (fake, client) = start_with_keys(QueueConfig::default(), Some(issuer.keys())).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    let email = "tasks-invoker@it-project.iam.gserviceaccount.com";
    let request = HttpRequest::new()
        .set_url(&url)
        .set_headers([
            ("Content-Type", "application/json"),
            ("User-Agent", "mine"),
            ("X-CloudTasks-TaskName", "forged"),
            ("X-Copy", "kept"),
        ])
        .set_body(b"{\"copy\":1}".as_slice())
        .set_oidc_token(OidcToken::new().set_service_account_email(email));
    let task = Task::new()
        .set_name(task_name("headers"))
        .set_http_request(request);
    create(&client, QUEUE, task).await.expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let hits = receiver.hits();
    let hit = &hits[0];
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.body, b"{\"copy\":1}");
    assert_eq!(header(hit, "x-cloudtasks-queuename"), "copies");
    assert_eq!(header(hit, "x-cloudtasks-taskname"), "headers");
    assert_eq!(header(hit, "x-cloudtasks-taskretrycount"), "0");
    assert_eq!(header(hit, "x-cloudtasks-taskexecutioncount"), "0");
    assert_eq!(header(hit, "user-agent"), "Google-Cloud-Tasks");
    assert_eq!(header(hit, "content-type"), "application/json");
    assert_eq!(header(hit, "x-copy"), "kept");
    let eta: f64 = header(hit, "x-cloudtasks-tasketa").parse().expect("ETA");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("now");
    assert!((now.as_secs_f64() - eta).abs() < 5.0, "ETA {eta}");
    let token = header(hit, "authorization")
        .strip_prefix("Bearer ")
        .expect("bearer token");
    let claims = issuer.keys().verify(token).expect("valid token");
    assert_eq!(claims["email"], email);
    // OidcToken.audience defaults to the task's URL.
    assert_eq!(claims["aud"], url.as_str());
}

#[tokio::test]
async fn answers_below_500_count_as_executions_and_the_last_status_is_passed_on() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(20),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    let receiver = Receiver::scripted(&[404, 500, 429], Duration::ZERO);
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("counted", &url))
        .await
        .expect("create");
    wait_until("a success", || fake.pending(QUEUE) == 0).await;
    let hits = receiver.hits();
    let seen =
        |name: &str| -> Vec<String> { hits.iter().map(|h| header(h, name).to_string()).collect() };
    assert_eq!(seen("x-cloudtasks-taskretrycount"), ["0", "1", "2", "3"]);
    // "This number does not include failures due to 5XX error codes" (TaskExecutionCount).
    assert_eq!(
        seen("x-cloudtasks-taskexecutioncount"),
        ["0", "1", "1", "2"]
    );
    assert_eq!(
        seen("x-cloudtasks-taskpreviousresponse"),
        ["", "404", "500", "429"]
    );
}

#[tokio::test]
async fn a_name_stays_taken_after_its_task_ran_until_the_window_passes() {
    let (fake, client) = start(QueueConfig::default()).await;
    let receiver = Receiver::default();
    let url = receiver.serve().await;
    create(&client, QUEUE, http_task("ran", &url))
        .await
        .expect("create");
    wait_until("the task done", || fake.pending(QUEUE) == 0).await;
    let again = create(&client, QUEUE, http_task("ran", &url)).await;
    assert_eq!(code(again), Some(Code::AlreadyExists));
    fake.set_dedup_window(Duration::ZERO);
    create(&client, QUEUE, http_task("ran", &url))
        .await
        .expect("free after the window");
    wait_until("the second task done", || fake.pending(QUEUE) == 0).await;
    assert_eq!(receiver.hits().len(), 2);
}

#[tokio::test]
async fn an_attempt_without_an_answer_by_its_dispatch_deadline_fails_and_is_retried() {
    let config = QueueConfig {
        min_backoff: Duration::from_millis(100),
        ..QueueConfig::default()
    };
    let (fake, client) = start(config).await;
    // Accepts connections, reads nothing and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/run", silent.local_addr().expect("addr"));
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    // 15 s is the shortest deadline Cloud Tasks accepts.
    let task = http_task("silent", &url).set_dispatch_deadline(deadline(15));
    let created = create(&client, QUEUE, task).await.expect("create");
    assert_eq!(created.dispatch_deadline, Some(deadline(15)));
    let limit = Duration::from_secs(25);
    wait_up_to(limit, "a retry", || fake.dispatches().len() >= 2).await;
    let rows = fake.dispatches();
    assert_eq!(
        (rows[0].attempt, rows[0].status),
        (1, 0),
        "no answer, no status"
    );
    assert!(rows[1].at - rows[0].at >= Duration::from_secs(15));
    let task = client
        .get_task()
        .set_name(task_name("silent"))
        .send()
        .await
        .expect("get");
    assert_eq!(task.response_count, 0);
}
