//! The people most tests start with, on a freshly started server.

use super::Server;

/// A started server with an agent's key, two finance approvers
/// (fin@example.com, fin2@example.com) and an approver outside finance
/// (sales@example.com).
pub struct Crew {
    pub server: Server,
    pub http: reqwest::Client,
    pub agent: String,
    pub finance: String,
    pub finance2: String,
    pub outsider: String,
}

impl Crew {
    /// Starts a server on `config` and makes the agent `agent` and the people.
    pub async fn start(
        config: &str,
        agent: &str,
        database_url: Option<String>,
        extra_env: Vec<(String, String)>,
    ) -> Crew {
        let server = Server::start_with(config, database_url, extra_env).await;
        Crew {
            agent: server.agent_key(agent),
            finance: server.user_token("fin@example.com", "approver", &["finance"]),
            finance2: server.user_token("fin2@example.com", "approver", &["finance"]),
            outsider: server.user_token("sales@example.com", "approver", &["sales"]),
            server,
            http: reqwest::Client::new(),
        }
    }
}
