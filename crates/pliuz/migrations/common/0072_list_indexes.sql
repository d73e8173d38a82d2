-- Indexes for every list, filter and sort of the API, the inbox and the
-- history at a million requests (checked by the store's query plan test):
-- each filter column leads an index that ends in `id`, so a page is read in
-- key order and stops at its limit; `(status, policy, id)` also answers the
-- inbox's per-policy counts from the index alone.
CREATE INDEX approvals_status_id ON approvals (status, id);
CREATE INDEX approvals_status_policy_id ON approvals (status, policy, id);
CREATE INDEX approvals_tool_id ON approvals (tool_name, id);
CREATE INDEX approvals_agent_id ON approvals (agent, id);
CREATE INDEX outbox_approval ON outbox (approval_id);
