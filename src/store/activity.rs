//! `conversation_activity`: each conversation's messages counted by who wrote them per quarter
//! of an hour, kept by the transaction that stores a message (`writes`, `inbound`) and read by
//! reports (`reports`), which then read a row per conversation and quarter instead of every
//! message.

/// A quarter of an hour, the unit `conversation_activity` counts messages in.
pub(super) const QUARTER_MS: i64 = 900_000;

/// Adds one message to its conversation's quarter: $1 conversation, $2 quarter, $3 channel,
/// then the customer, bot and person counts.
pub(super) const COUNT_ACTIVITY: &str =
    "INSERT INTO conversation_activity (conversation_id, quarter, channel_id, customer, bot, person)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (conversation_id, quarter) DO UPDATE SET
        customer = conversation_activity.customer + excluded.customer,
        bot = conversation_activity.bot + excluded.bot,
        person = conversation_activity.person + excluded.person";

/// Adds customer messages of a batch to their conversations' quarter ($2), from rows of
/// conversation `v`, channel `c` and count `n` (see `inbound::run`).
pub(super) const COUNT_CUSTOMER_ACTIVITY: &str =
    "INSERT INTO conversation_activity (conversation_id, quarter, channel_id, customer, bot, person)
     SELECT e.value->>'v', $2, e.value->>'c', CAST(e.value->>'n' AS BIGINT), 0, 0
     FROM {rows} WHERE true
     ON CONFLICT (conversation_id, quarter) DO UPDATE SET
        customer = conversation_activity.customer + excluded.customer";
