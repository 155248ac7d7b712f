//! Who a client is and what it may do: the user store (`users`: SCRAM credentials and
//! SigV4 access keys) and the ACLs (`acls`: Kafka's authorization model over every
//! protocol's resources). Both live in the catalog, so every shard reads them from its
//! snapshot; the engine (`src/engine/security.rs`) changes them on the controller and
//! answers the front ends' questions; `offline` changes them in a stopped broker's data
//! directory (the first user).

pub mod acls;
pub mod offline;
pub mod users;

pub use acls::{
    AclBinding, AclError, AclFilter, AclStore, Operation, PatternFilter, PatternType, Permission,
    ResourceType,
};
pub use users::{
    AccessKey, ScramCredential, ScramMechanism, User, UserChange, UserError, UserInfo, UserStore,
};
