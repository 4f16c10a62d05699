"""The rest of what `kaggle competitions|kernels|datasets ...` can ask, answered as Kaggle answers a participant of
a competition like the host's: no forum topics yet, no episodes (it is not a simulation competition), no pages, and
the competition-hosting calls refused (403): the competition's host is whoever made it with `headstart local
create`, who works on its files, not through this API. Creating a competition through the API is not imitated (501).
"""

from __future__ import annotations

from kagglesdk.competitions.types.competition_api_service import (
    ApiListCompetitionPagesResponse,
    ApiListCompetitionTopicsResponse,
)
from kagglesdk.discussions.types.discussions_api_service import ApiListTopicsResponse

from tasks.host.common import HostError
from tasks.host.rpc import make

COMPETITIONS = "competitions.CompetitionApiService/"
HOSTING = ("ListCompetitionHosts", "AddCompetitionHost", "GetCompetitionSettings", "UpdateCompetitionSettings",
           "LaunchCompetition", "CreateCompetitionData", "CreateCompetitionSolution", "GetCompetitionSolutionStatus",
           "CreateCompetitionSampleSubmission", "CreateCompetitionPage", "UpdateCompetitionPage",
           "DeleteCompetitionPage", "ListCompetitionJudges", "AddCompetitionJudge")


def competition_topics(host, user: str, request) -> ApiListCompetitionTopicsResponse:
    host.competition(request.competition_name)
    return make(ApiListCompetitionTopicsResponse, topics=[], total_count=0)


def competition_pages(host, user: str, request) -> ApiListCompetitionPagesResponse:
    host.competition(request.competition_name)
    return make(ApiListCompetitionPagesResponse, pages=[])


def dataset_topics(host, user: str, request) -> ApiListTopicsResponse:
    host.datasets.require(request.owner_slug, request.dataset_slug, user)
    return make(ApiListTopicsResponse, topics=[], total_count=0)


def kernel_topics(host, user: str, request) -> ApiListTopicsResponse:
    host.kernels.readable(user, request.owner_slug, request.kernel_slug)
    return make(ApiListTopicsResponse, topics=[], total_count=0)


def episodes(host, user: str, request):
    raise HostError(400, f"{host.backend.name} is not a simulation competition: its submissions play no episodes")


def episode(host, user: str, request):
    raise HostError(404, f"Episode {request.episode_id} not found: {host.backend.name} is not a simulation "
                         "competition")


def no_topic(host, user: str, request):
    raise HostError(404, "Topic not found: nobody has started a discussion on this host")


def hosting(host, user: str, request):
    raise HostError(403, f"Permission 'competitions.host' was denied: only the hosts of {host.backend.name} may; "
                         "it is served by `headstart host`, whose operator changes it on disk")


def create_competition(host, user: str, request):
    raise HostError(501, "Creating a competition through the API is not imitated by headstart host: make one with "
                         "`headstart local create NAME --from ZIP --solution CSV`, then `headstart host NAME`")


UNIMITATED_ROUTES = {
    COMPETITIONS + "ListCompetitionTopics": competition_topics,
    COMPETITIONS + "ListCompetitionPages": competition_pages,
    COMPETITIONS + "ListSubmissionEpisodes": episodes, COMPETITIONS + "GetEpisodeReplay": episode,
    COMPETITIONS + "GetEpisodeAgentLogs": episode, COMPETITIONS + "CreateCompetition": create_competition,
    **{COMPETITIONS + name: hosting for name in HOSTING},
    "discussions.DiscussionApiService/ListDatasetTopics": dataset_topics,
    "discussions.DiscussionApiService/ListKernelTopics": kernel_topics,
    "discussions.DiscussionApiService/GetTopic": no_topic, COMPETITIONS + "ListTopicMessages": no_topic,
}
