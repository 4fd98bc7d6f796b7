-- Meta's business-scoped user id (BSUID, 2026): a customer with a WhatsApp username may arrive
-- with it and no phone number. A contact keeps both ids; messages carrying a known user id land
-- on the same contact whatever its other id.
ALTER TABLE contacts ADD COLUMN user_id TEXT;
CREATE INDEX contacts_user_id ON contacts (channel_id, user_id);
