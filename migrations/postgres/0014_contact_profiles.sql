-- What a business keeps about a customer: language, notes, labels and its own attributes (a CRM's
-- case id...), so conversations can be found by them.
ALTER TABLE contacts ADD COLUMN language TEXT;
ALTER TABLE contacts ADD COLUMN notes TEXT;
CREATE TABLE contact_labels (
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    PRIMARY KEY (contact_id, label)
);
CREATE INDEX contact_labels_label ON contact_labels (label, contact_id);
CREATE TABLE contact_attributes (
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (contact_id, key)
);
CREATE INDEX contact_attributes_value ON contact_attributes (key, value, contact_id);
