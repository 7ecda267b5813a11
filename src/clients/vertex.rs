//! Vertex AI: start a copy, check its operation, find an existing copy (DESIGN.md §1).
//!
//! Every call goes through the official `google-cloud-aiplatform-v1` ModelService client,
//! one client per regional endpoint (`https://{location}-aiplatform.googleapis.com`), or
//! `VERTEX_ENDPOINT` for every location when it is set.
//!
//! An endpoint is built from a parsed [`Location`] only (a region name: lowercase letters,
//! digits, one hyphen), never from a string as it arrived. A location that is not a region is
//! refused as INVALID_ARGUMENT before any client exists, so no name carried in a message can
//! point the worker's credentials at another host (issue 28, DESIGN.md §10).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use google_cloud_aiplatform_v1::client::ModelService;
use google_cloud_aiplatform_v1::model::{
    CopyModelRequest, CopyModelResponse, EncryptionSpec, Model,
};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::options::RequestOptionsBuilder as _;
use google_cloud_longrunning::model::operation::Result as OpResult;

use crate::domain::{
    CopyRequest, Destination, KmsKeyName, Location, ModelInfo, OperationName, Target,
};
use crate::retry::{Failure, classify};

/// What an operation check found.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationState {
    Running,
    Succeeded(CopiedModel),
    /// Ended with a google.rpc error.
    Failed(Failure),
}

pub use crate::domain::CopiedModel;

/// The Vertex AI calls the stages need. A seam: tests swap the endpoint (the `testkit` fake),
/// not the client.
#[async_trait]
pub trait Vertex: Send + Sync {
    /// Starts CopyModel, the copy encrypted with `key` (its `encryptionSpec`) when there is
    /// one: the key `domain::check_copy_limits` chose, the request's own or the default of
    /// the destination's region. Returns the operation name.
    async fn start_copy(
        &self,
        req: &CopyRequest,
        key: Option<&KmsKeyName>,
    ) -> Result<OperationName, Failure>;
    async fn get_operation(&self, op: &OperationName) -> Result<OperationState, Failure>;
    /// Reads a model; `Ok(None)` when it does not exist (yet).
    async fn get_model(&self, name: &str, location: &str) -> Result<Option<ModelInfo>, Failure>;
    /// What `dest` already holds that could be an earlier copy: the model it names, or every
    /// version of the parent model it adds a version to. Empty while there is nothing yet.
    /// Which call reads it is this client's business, not the pipeline's.
    async fn find_copies(&self, dest: &Destination) -> Result<Vec<ModelInfo>, Failure>;
}

/// How to reach Vertex AI.
#[derive(Debug, Clone)]
pub struct VertexOptions {
    /// `VERTEX_ENDPOINT`; `None` for the regional endpoint of each location.
    pub endpoint: Option<String>,
    /// Limit on one attempt of one call: a hung connection becomes DEADLINE_EXCEEDED
    /// (transient) instead of holding the push until its ack deadline.
    pub call_timeout: std::time::Duration,
}

impl Default for VertexOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            call_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// [`Vertex`] over the official client.
pub struct GoogleVertex {
    opts: VertexOptions,
    clients: Mutex<HashMap<String, ModelService>>,
    builds: tokio::sync::Mutex<()>,
}

impl GoogleVertex {
    pub fn new(opts: VertexOptions) -> Self {
        Self {
            opts,
            clients: Mutex::new(HashMap::new()),
            builds: tokio::sync::Mutex::new(()),
        }
    }

    fn endpoint_for(&self, location: &Location) -> String {
        match &self.opts.endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://{location}-aiplatform.googleapis.com"),
        }
    }

    /// The client for a location given as text: refused as INVALID_ARGUMENT (permanent) unless
    /// it is a region name.
    async fn client(&self, location: &str) -> Result<ModelService, Failure> {
        let location = Location::parse("location", location)
            .map_err(|r| Failure::new(Code::InvalidArgument, r.to_string()))?;
        self.client_in(&location).await
    }

    /// One client per endpoint, built on first use and kept (each holds a connection pool).
    async fn client_in(&self, location: &Location) -> Result<ModelService, Failure> {
        let endpoint = self.endpoint_for(location);
        if let Some(c) = self.clients.lock().expect("lock").get(&endpoint) {
            return Ok(c.clone());
        }
        let _one_at_a_time = self.builds.lock().await;
        if let Some(c) = self.clients.lock().expect("lock").get(&endpoint) {
            return Ok(c.clone());
        }
        let mut b = ModelService::builder().with_endpoint(endpoint.clone());
        // Credentials are never sent over plain HTTP: a local endpoint is used anonymously.
        if endpoint.starts_with("http://") {
            b = b.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        let client = b.build().await.map_err(|e| {
            Failure::new(
                Code::Unavailable,
                format!("cannot build the Vertex AI client for {endpoint}: {e}"),
            )
        })?;
        self.clients
            .lock()
            .expect("lock")
            .insert(endpoint, client.clone());
        Ok(client)
    }
}

impl GoogleVertex {
    /// Lists at most one model in `parent` (`projects/P/locations/L`): the cheapest call that
    /// shows the endpoint answers and the caller may read the project there (`copy-worker
    /// doctor`). Returns how many models the page held (0 or 1). One attempt, no retries: a
    /// pre-flight check reports what it sees.
    pub async fn probe(&self, parent: &str, location: &str) -> Result<usize, Failure> {
        let client = self.client(location).await?;
        let page = client
            .list_models()
            .set_parent(parent)
            .set_page_size(1)
            .with_attempt_timeout(self.opts.call_timeout)
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(page.models.len())
    }
}

/// The CopyModel request of a copy: the one place the kind of destination meets Vertex AI's
/// fields (a new model id, or a new version of a parent model), and the key its
/// `encryptionSpec.kmsKeyName` (`CopyModelRequest.encryption_spec`, google-cloud-aiplatform-v1:
/// "Customer-managed encryption key options. If this is set, then the Model copy will be
/// encrypted with the provided encryption key").
fn copy_model_request(req: &CopyRequest, key: Option<&KmsKeyName>) -> CopyModelRequest {
    let d = &req.destination;
    let r = CopyModelRequest::new()
        .set_parent(d.parent())
        .set_source_model(req.source_model.to_string());
    let r = match &d.target {
        Target::ModelId(id) => r.set_model_id(id.clone()),
        Target::ParentModel(p) => r.set_parent_model(p.without_version()),
    };
    match key {
        Some(k) => r.set_encryption_spec(EncryptionSpec::new().set_kms_key_name(k.as_str())),
        None => r,
    }
}

fn model_info(m: Model) -> ModelInfo {
    ModelInfo {
        name: m.name,
        version_id: m.version_id,
        original_model: m
            .original_model_info
            .map(|o| o.model)
            .filter(|s| !s.is_empty()),
        container_image_uri: m
            .container_spec
            .map(|c| c.image_uri)
            .filter(|s| !s.is_empty()),
        kms_key_name: m
            .encryption_spec
            .map(|e| e.kms_key_name)
            .filter(|s| !s.is_empty()),
    }
}

#[async_trait]
impl Vertex for GoogleVertex {
    async fn start_copy(
        &self,
        req: &CopyRequest,
        key: Option<&KmsKeyName>,
    ) -> Result<OperationName, Failure> {
        let client = self.client(&req.destination.location).await?;
        let r = copy_model_request(req, key);
        let op = client
            .copy_model()
            .with_request(r)
            .with_attempt_timeout(self.opts.call_timeout)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        OperationName::parse(&op.name).map_err(|e| {
            Failure::new(
                Code::Internal,
                format!("Vertex AI returned an unusable operation name: {e}"),
            )
        })
    }

    async fn get_operation(&self, op: &OperationName) -> Result<OperationState, Failure> {
        let client = self.client_in(op.region()).await?;
        let o = client
            .get_operation()
            .set_name(op.as_str())
            .with_attempt_timeout(self.opts.call_timeout)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if !o.done {
            return Ok(OperationState::Running);
        }
        match o.result {
            Some(OpResult::Error(s)) => Ok(OperationState::Failed(Failure::new(
                Code::from(s.code),
                s.message,
            ))),
            Some(OpResult::Response(any)) => {
                let r: CopyModelResponse = any.to_msg().map_err(|e| {
                    Failure::new(
                        Code::Internal,
                        format!("operation {op} returned an unexpected response: {e}"),
                    )
                })?;
                Ok(OperationState::Succeeded(CopiedModel {
                    model: r.model,
                    version_id: r.model_version_id,
                }))
            }
            // `done` without a result is not something Vertex sends; treat it as transient
            // so the check is repeated rather than announcing a copy that cannot be read.
            _ => Err(Failure::new(
                Code::Unavailable,
                format!("operation {op} is done but carries no result"),
            )),
        }
    }

    async fn get_model(&self, name: &str, location: &str) -> Result<Option<ModelInfo>, Failure> {
        let client = self.client(location).await?;
        match client
            .get_model()
            .set_name(name)
            .with_attempt_timeout(self.opts.call_timeout)
            .send()
            .await
        {
            Ok(m) => Ok(Some(model_info(m))),
            Err(e) => {
                let f = classify(&e);
                if f.code == Code::NotFound {
                    Ok(None)
                } else {
                    Err(f)
                }
            }
        }
    }

    async fn find_copies(&self, dest: &Destination) -> Result<Vec<ModelInfo>, Failure> {
        let name = dest.model_name();
        match &dest.target {
            Target::ParentModel(_) => self.list_versions(&name, &dest.location).await,
            Target::ModelId(_) => Ok(self
                .get_model(&name, &dest.location)
                .await?
                .into_iter()
                .collect()),
        }
    }
}

impl GoogleVertex {
    /// Every version of model `name`, page by page.
    async fn list_versions(&self, name: &str, location: &str) -> Result<Vec<ModelInfo>, Failure> {
        let client = self.client(location).await?;
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_model_versions()
                .set_name(name)
                .set_page_token(token)
                .with_attempt_timeout(self.opts.call_timeout)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            out.extend(page.models.into_iter().map(model_info));
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe of issue 28 put `127.0.0.1:47300#` where a location goes, and the worker sent
    /// its bearer token to that listener. A location that is not a region never becomes an
    /// endpoint: the call is refused as INVALID_ARGUMENT and nothing connects.
    #[tokio::test]
    async fn a_location_that_is_not_a_region_never_becomes_a_connection() {
        let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = trap.local_addr().unwrap().port();
        let vertex = GoogleVertex::new(VertexOptions::default());
        let forged = format!("127.0.0.1:{port}#");
        let name = format!("projects/1/locations/{forged}/models/7");
        let e = vertex.get_model(&name, &forged).await.unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument, "{e:?}");
        assert!(e.message.contains("region"), "{}", e.message);
        let dest = Destination {
            project: crate::domain::Project::parse("p", "dst-proj").unwrap(),
            location: forged.clone(),
            target: Target::ModelId("m".into()),
        };
        let e = vertex.find_copies(&dest).await.unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        let accepted = tokio::time::timeout(std::time::Duration::from_millis(300), trap.accept());
        assert!(accepted.await.is_err(), "a connection reached the trap");
        assert!(
            vertex.clients.lock().unwrap().is_empty(),
            "no client was built"
        );
    }
}
