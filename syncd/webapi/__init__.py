"""A Dataverse Web API (OData v4) over the simulated tables: reads, and a customer's writes on users.

Every environment is served as its own organization: the Web API root of environment `prod` is
`<base>/prod/api/data/v9.2/` (a name a URL segment cannot carry as it is is percent-encoded, see
`urls`). What is answered, and in which shapes, follows Microsoft's Web API documentation
("Query data using the Web API", "Page results", "Web API client errors", "Execute batch
operations", "Query table definitions"), so that Microsoft's own Python SDK
(`powerplatform-dataverse-client`) reads it as it reads Dataverse.

Modules, bottom up:
  errors      Dataverse's error body and the codes it uses
  urls        environment name <-> URL segment, the service root
  entities    the entity types, derived from the SQLAlchemy table metadata (never a fixed list)
  filter      $filter: tokenizer and parser into an AST (no SQL)
  compile     that AST into SQLAlchemy Core expressions, typed by the column (never SQL strings)
  query       $select/$orderby/$top/$count/Prefer, keyset paging with an opaque cookie
  records     a row as a JSON record: ids lower case, @odata.etag, formatted values
  metadata    EntityDefinitions and their Attributes
  writer      the one writer: a customer's update of a systemuser (R12, R14, R16-R17), with its event
  writes      a write's body checked and typed; the errors of writes Dataverse answers a customer
  service     one request (method, path, query, headers) -> one response, for HTTP and $batch alike
  auth        bearer tokens of the fake Entra ID, checked (`--require-token`)
  batch       $batch: multipart/mixed in, multipart/mixed out
  app         the ASGI app and the dispatcher that mounts it beside another app

It sits above `syncd.dataverse` and below `syncd.service`; its reads import nothing above
`syncd.dataverse`, and its one writer (`writer`) reuses the admin operations (`syncd.admin.modes`),
so that it alone imports `syncd.admin` and `syncd.rules`.
"""

from syncd.webapi.app import create_webapi_app, mount_webapi

__all__ = ["create_webapi_app", "mount_webapi"]
