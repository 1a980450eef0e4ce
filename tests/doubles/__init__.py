"""Local stand-ins for remote services that cannot run on a developer machine or in CI.

Each double speaks the service's real REST protocol, so the production code keeps
using the real Azure SDK clients (azure-identity, azure-mgmt-datafactory) and only
the endpoint it talks to changes.
"""
