//! [`FakeQueues`]: the Cloud Tasks seam, a script of CreateTask answers and the tasks the
//! queues hold (one per name).

use std::sync::Mutex;

use async_trait::async_trait;
use google_cloud_gax::error::rpc::Code;

use super::{Script, failure};
use crate::clients::tasks::{NewTask, Queue, TaskQueues};
use crate::retry::Failure;

/// How Cloud Tasks answers a CreateTask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Create {
    /// Created, or (a name seen before) ALREADY_EXISTS, which the client answers as `Ok`.
    Ok,
    /// Refused with this code (UNAVAILABLE, NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT).
    Fails(Code),
}

/// [`TaskQueues`] from a script; without one every task is created.
#[derive(Default)]
pub(crate) struct FakeQueues {
    script: Mutex<Script<Create>>,
    /// Every CreateTask the stage made, in order, whatever the answer.
    calls: Mutex<Vec<NewTask>>,
    /// The tasks the queues hold: one per name, as in Cloud Tasks.
    created: Mutex<Vec<NewTask>>,
}

impl FakeQueues {
    pub fn on_create(&self, answers: impl IntoIterator<Item = Create>) {
        for a in answers {
            assert_ne!(
                a,
                Create::Fails(Code::AlreadyExists),
                "the client answers ALREADY_EXISTS as Ok"
            );
            self.script.lock().unwrap().0.push_back(a);
        }
    }

    /// Every CreateTask call, in order.
    pub fn calls(&self) -> Vec<NewTask> {
        self.calls.lock().unwrap().clone()
    }

    /// The tasks `queue` holds, in the order they were created.
    pub fn tasks(&self, queue: Queue) -> Vec<NewTask> {
        let created = self.created.lock().unwrap();
        created
            .iter()
            .filter(|t| t.queue == queue)
            .cloned()
            .collect()
    }

    /// The one task `queue` holds; fails the test unless there is exactly one.
    pub fn only(&self, queue: Queue) -> NewTask {
        super::only(queue, self.tasks(queue))
    }
}

#[async_trait]
impl TaskQueues for FakeQueues {
    async fn create(&self, task: NewTask) -> Result<(), Failure> {
        self.calls.lock().unwrap().push(task.clone());
        let answer = {
            let mut script = self.script.lock().unwrap();
            if script.0.is_empty() {
                Create::Ok
            } else {
                script.next("CreateTask")
            }
        };
        match answer {
            Create::Fails(code) => Err(failure(code, "CreateTask")),
            Create::Ok => {
                let mut created = self.created.lock().unwrap();
                if !created.iter().any(|t| t.id == task.id) {
                    created.push(task);
                }
                Ok(())
            }
        }
    }
}
