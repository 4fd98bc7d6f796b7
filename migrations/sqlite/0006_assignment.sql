-- Assignment: a conversation can belong to a person; who sent a human reply and who closed an
-- escalation are recorded as user ids; a workspace says how escalations are assigned, and each
-- membership remembers when it last got one (round-robin picks the longest-waiting agent).
ALTER TABLE conversations ADD COLUMN assignee_id TEXT REFERENCES users(id) ON DELETE SET NULL;
CREATE INDEX conversations_assignee ON conversations (assignee_id);
ALTER TABLE messages ADD COLUMN sent_by TEXT;
ALTER TABLE escalations ADD COLUMN closed_by_user TEXT;
ALTER TABLE memberships ADD COLUMN last_assigned_at INTEGER;
ALTER TABLE workspaces ADD COLUMN assignment TEXT NOT NULL DEFAULT '{"mode":"manual"}';
