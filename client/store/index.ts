/** The encrypted local action store: what the rest of the client may use. */
export { ActionStore, StoreError, summarize, storeExists, type ActionStoreOptions, type ActionSummary, type StoreProblem } from "./action-store.ts";
export { ACTION_KINDS, MAX_APP_LENGTH, MAX_TOKEN_LENGTH, actionRecordSchema, utcDay, type ActionKind, type ActionRecord } from "./action-record.ts";
